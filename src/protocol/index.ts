// The wire protocol v1 codec, shared by the server, the client SDK and the tests.
export * from "./wire.js";
export * from "./ids.js";
export * from "./request.js";
export * from "./response.js";
export * from "./frame-reader.js";
export { readU64, readU64Clamped, writeU64 } from "./u64.js";
export * from "./reply-reader.js";
