// Request and response shapes of the Qdrant REST API, taken from the schema types that
// @qdrant/js-client-rest generates from Qdrant's OpenAPI spec, so the double cannot drift from
// what a real server accepts and returns. Type-only: nothing of the client is loaded at run time.
import type { Schemas } from '@qdrant/js-client-rest';

export type { Schemas };
export type PointId = Schemas['ExtendedPointId'];
export type Payload = Schemas['Payload'];
export type Filter = Schemas['Filter'];
export type Condition = Schemas['Condition'];
export type Distance = Schemas['Distance'];
export type VectorParams = Schemas['VectorParams'];

/** The success envelope: `{result, status: "ok", time}`. */
export interface OkEnvelope<T> {
  readonly result: T;
  readonly status: 'ok';
  readonly time: number;
}

/** The envelope of a `wait=false` operation Qdrant accepted (HTTP 202). */
export interface AcceptedEnvelope {
  readonly status: 'accepted';
  readonly time: number;
}

/** Qdrant's error envelope (`ErrorResponse`) with a non-2xx status. */
export type ErrorEnvelope = Required<Pick<Schemas['ErrorResponse'], 'status' | 'time'>>;
