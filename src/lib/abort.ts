/** Waiting on shared work without being stuck with it. */

/**
 * Settles as `promise` does, or rejects with `signal.reason` as soon as the signal aborts. The shared `promise`
 * itself goes on (others may be waiting for it too); the listener is removed either way.
 */
export function untilAborted<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
