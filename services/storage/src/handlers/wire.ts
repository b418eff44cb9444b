// Request/reply encoding lives in the runtime (every service that answers requests shares it).
export { decodeRequest, encodeReply, requestEncoding, type DecodedRequest, type WireEncoding } from '@tidemark/runtime';
