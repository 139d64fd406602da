'use strict'
// The coded errors the JS side raises itself. The core's own errors arrive with their `code`
// already set (`src/error.rs`); `nativeError` reads the code a constructor error carries.

function badArgument(message) {
  const err = new TypeError(message)
  err.code = 'ERR_BAD_ARGUMENT'
  return err
}

function closedError() {
  const err = new Error('the store is closed')
  err.code = 'ERR_CLOSED'
  return err
}

function badData(key, cause) {
  const err = new Error(`the value stored at ${JSON.stringify(key)} could not be parsed: ${cause && cause.message}`, { cause })
  err.code = 'ERR_BAD_DATA'
  return err
}

/** Errors thrown by a native call carry their code at the front of the message. */
function nativeError(err) {
  const m = /^(ERR_[A-Z_]+): (.*)$/s.exec(err && err.message)
  if (!m) return err
  const e = m[1] === 'ERR_BAD_ARGUMENT' ? new TypeError(m[2]) : new Error(m[2])
  e.code = m[1]
  return e
}

/** Rejects ids that are not non-empty strings, the same way for every adapter. */
function checkId(id, what = 'session id') {
  if (typeof id !== 'string') throw badArgument(`${what} must be a string, got ${id === null ? 'null' : typeof id}`)
  if (id.length === 0) throw badArgument(`${what} must not be empty`)
  return id
}

/**
 * Parses a stored value; one that does not parse becomes a coded error, not a crash. Returns
 * the value, or a promise when the parser is async.
 */
function parseStored(serializer, raw, key) {
  let parsed
  try {
    parsed = serializer.parse(raw)
  } catch (cause) {
    throw badData(key, cause)
  }
  if (parsed && typeof parsed.then === 'function') {
    return Promise.resolve(parsed).catch((cause) => {
      throw badData(key, cause)
    })
  }
  return parsed
}

module.exports = { badArgument, closedError, nativeError, checkId, parseStored }
