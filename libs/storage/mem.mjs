import { startS3 } from '@tidemark/testkit';
import { createS3Backend } from '@tidemark/storage';
import { Readable } from 'node:stream';
const s3 = await startS3();
const b = await createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'mem' });
let peak = 0; const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
const total = 800 * 1024 * 1024; const chunk = Buffer.alloc(64 * 1024, 1);
async function* gen() { for (let s = 0; s < total; s += chunk.length) yield Buffer.from(chunk); }
const base = process.memoryUsage().rss;
console.log(await b.save('big', Readable.from(gen())));
clearInterval(t); console.log('rss base MiB', base >> 20, 'peak MiB', peak >> 20);
await b.close(); await s3.stop();
