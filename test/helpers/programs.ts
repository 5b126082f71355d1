/**
 * Tests that drive a real program from Debian's packages (Chromium, nginx). `.ci/run` installs them when
 * missing and sets BULK_GATEWAY_CI=1, so there a missing program fails the test; on a developer's machine
 * without it the test is skipped with the command that installs it.
 */
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Test } from 'tap'

/** The first executable found among `candidates` (absolute paths or names looked up on PATH). */
export function findProgram (candidates: string[]): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const candidate of candidates) {
    const paths = candidate.includes('/') ? [candidate] : dirs.map(d => join(d, candidate))
    for (const path of paths) {
      try {
        accessSync(path, constants.X_OK)
        return path
      } catch {}
    }
  }
  return undefined
}

/**
 * The program's path, or undefined after failing (CI) or skipping (elsewhere) the test `t` with a message
 * that says how to install it.
 */
export function requireProgram (t: Test, what: string, candidates: string[], debianPackage: string): string | undefined {
  const found = findProgram(candidates)
  if (found !== undefined) return found
  const message = `${what} is not installed (apt-get install ${debianPackage})`
  if (process.env.BULK_GATEWAY_CI === '1') t.fail(message)
  else t.pass(message, { skip: message })
  return undefined
}
