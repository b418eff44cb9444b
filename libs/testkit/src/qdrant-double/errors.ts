// An error the double answers with Qdrant's error envelope, with the HTTP status and message
// prefix Qdrant uses for the same failure ("Not found: ...", "Wrong input: ...", ...).

export class QdrantHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'QdrantHttpError';
  }
}

export const notFound = (message: string) => new QdrantHttpError(404, `Not found: ${message}`);
export const wrongInput = (message: string) => new QdrantHttpError(400, `Wrong input: ${message}`);
export const badRequest = (message: string) => new QdrantHttpError(400, `Bad request: ${message}`);
export const conflict = (message: string) => new QdrantHttpError(409, `Wrong input: ${message}`);
/** Body validation (Qdrant validates deserialised bodies and answers 422). */
export const validation = (message: string) => new QdrantHttpError(422, `Validation error in JSON body: [${message}]`);
/** A request the real server accepts but this double does not implement. */
export const unsupported = (what: string) =>
  new QdrantHttpError(501, `Service internal error: ${what} is not supported by the tidemark qdrant test double`);

export const collectionNotFound = (name: string) => notFound(`Collection \`${name}\` doesn't exist!`);
