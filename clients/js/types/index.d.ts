// The SDK's public types: the protocol's messages (protocol.d.ts, generated from
// schemas/ws/) and the classes of src/ (their JSDoc types, checked by tsc -p clients/js).
export * from './protocol';
export { DriverClient } from '../src/driver.js';
export { RiderClient } from '../src/rider.js';
export { OpsClient, OpsCity } from '../src/ops.js';
export { MeridianError, ERROR_CODES, PROTOCOL_ERRORS, CLIENT_ERRORS } from '../src/errors.js';
export { connectDriver, connectRider, connectOps } from '../src/index.js';
