// The baton client SDK: the package's main entry.
export { BatonClient } from "./client.js";
export type { AcquireOptions, AutoRenewOptions, BatonClientEvents, BatonClientOptions, CallOptions, RenewOptions, RequestEvent, RetryEvent, WithLockOptions } from "./client.js";
export { Lease } from "./lease.js";
export type { LeaseCallOptions, LeaseRenewOptions } from "./lease.js";
export type { AcquireResult, InspectResult, LeaseReleaseResult, LeaseRenewResult, ReleaseResult, RenewResult } from "./results.js";
export { LockId } from "./ids.js";
export type { LockRef, OwnerRef } from "./ids.js";
export { parseEndpointList } from "./endpoints.js";
export type { Endpoint, EndpointInput } from "./endpoints.js";
export {
  BatonError,
  ClientClosedError,
  ConnectionError,
  InvalidArgumentError,
  InvalidRequestError,
  LeaseLostError,
  LockWaitTimeoutError,
  NotLeaderError,
  ProtocolError,
  RequestAbortedError,
  RequestTimeoutError,
  RetriesExhaustedError,
  ServerUnavailableError,
} from "./errors.js";
export type { BatonErrorCode, LeaseLossReason } from "./errors.js";
