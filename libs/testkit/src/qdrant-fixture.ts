// What the Qdrant integration suites (libs/qdrant's and the qdrant-agent's) start from: the same
// deterministic points, the same seeded `docs` collection, and a full scroll to compare copies.
import type { QdrantPoint, QdrantPort } from '@tidemark/qdrant';

/** `count` points from id `from`: 16-dimensional vectors and a payload with `updatedAt: ts`. */
export function points(from: number, count: number, ts: number): QdrantPoint[] {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return { id: n, vector: Array.from({ length: 16 }, (_, j) => Math.fround(Math.cos(n * 3 + j))), payload: { n, text: `doc ${n}`, nested: { even: n % 2 === 0 }, updatedAt: ts } };
  });
}

/** Creates `docs` (16 dims, Dot) with 1200 numeric ids and one UUID id, all at `updatedAt: 100`. */
export async function seedDocs(port: QdrantPort): Promise<void> {
  await port.createCollection('docs', { vectors: { size: 16, distance: 'Dot' } });
  for (let i = 0; i < 1200; i += 300) await port.upsert('docs', points(i, 300, 100));
  await port.upsert('docs', [{ id: '5c56c793-69f3-4fbf-87e6-c4bf54c28c26', vector: Array(16).fill(0.5), payload: { uuid: true, updatedAt: 100 } }]);
}

/** Every point of `collection` with vectors and payloads, in Qdrant's id order. */
export async function scrollAll(port: QdrantPort, collection: string): Promise<QdrantPoint[]> {
  const out: QdrantPoint[] = [];
  let offset: QdrantPoint['id'] | null = null;
  for (;;) {
    const page = await port.scroll(collection, { limit: 500, offset, withVector: true, withPayload: true });
    out.push(...page.points);
    if (page.nextOffset === null) return out;
    offset = page.nextOffset;
  }
}
