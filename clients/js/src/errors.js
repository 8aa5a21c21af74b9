// errors.js: every error the SDK can hand the app, with a sentence that says what to do.
// The protocol's codes (schemas/ws/server/error.json; the record below is typed against the
// generated ErrorCode, so a new code in the schema fails the type check until it is here)
// and the SDK's own: disconnected, timeout, closed.

/** @typedef {import('../types/protocol').ErrorCode} ErrorCode */
/** @typedef {ErrorCode | 'disconnected' | 'timeout' | 'closed'} MeridianErrorCode */

/** @type {Record<ErrorCode, {retry: boolean, text: string}>} */
export const PROTOCOL_ERRORS = {
  bad_request: { retry: false, text: 'the message was refused as malformed (see field); fix the call, do not retry it as is' },
  unauthorized: { retry: false, text: 'the token is missing, invalid or expired: get a new one' },
  forbidden: { retry: false, text: 'not allowed for this user (e.g. cancelling another rider\'s request, or a token of another role)' },
  rate_limited: { retry: true, text: 'over the gateway\'s rate limit; the SDK paces below it, so another client or code path is sending too' },
  out_of_area: { retry: false, text: 'the position or pickup is outside the service area' },
  unknown_offer: { retry: false, text: 'the offer does not exist, expired, or is not this driver\'s' },
  invalid_state: { retry: false, text: 'the trip step does not fit the trip\'s state (the trip moved on, e.g. the rider cancelled)' },
  too_large: { retry: false, text: 'the message is over 4 KiB' },
  unavailable: { retry: true, text: 'the gateway cannot take this now (Kafka or Redis busy or down); retry later' },
  internal: { retry: true, text: 'a bug in the gateway (it is logged there); retry later' },
};

/** @type {Record<'disconnected' | 'timeout' | 'closed', {retry: boolean, text: string}>} */
export const CLIENT_ERRORS = {
  disconnected: { retry: true, text: 'the connection dropped before the gateway answered; it may or may not have been taken (the trip snapshot after reconnecting tells)' },
  timeout: { retry: true, text: 'no answer from the gateway in time' },
  closed: { retry: false, text: 'the client was closed by the app' },
};

/** All codes the SDK knows, with whether retrying can help and what they mean. */
export const ERROR_CODES = { ...PROTOCOL_ERRORS, ...CLIENT_ERRORS };

export class MeridianError extends Error {
  /**
   * @param {MeridianErrorCode | string} code
   * @param {string} [message] the gateway's sentence, if any
   * @param {{field?: string, ref?: string, status?: number}} [extra]
   */
  constructor(code, message, extra = {}) {
    const known = /** @type {Record<string, {retry: boolean, text: string}>} */ (ERROR_CODES)[code];
    const what = known ? known.text : 'an error code this SDK does not know (a newer gateway?)';
    super(`${code}${extra.field ? ` (${extra.field})` : ''}: ${message ? `${message}; ` : ''}${what}`);
    this.name = 'MeridianError';
    /** @type {string} */
    this.code = code;
    /** @type {string | undefined} */
    this.field = extra.field;
    /** @type {string | undefined} */
    this.ref = extra.ref;
    /** @type {number | undefined} HTTP status of a refused upgrade (401, 403, 503) */
    this.status = extra.status;
    /** @type {boolean} */
    this.retryable = known ? known.retry : false;
    /** @type {string | undefined} */
    this.serverMessage = message;
  }
}
