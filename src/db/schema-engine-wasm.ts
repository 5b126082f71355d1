/**
 * Loads Prisma's schema engine WebAssembly by hand and provides what it expects from its host.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import * as bindings from '@prisma/schema-engine-wasm/schema_engine_bg'
import type { DbLogger } from './db-logger.js'

/** The package's JS glue, bound to the instance. */
export type SchemaEngineBindings = typeof bindings

// The project compiles without lib "dom", and @types/node 20 does not declare WebAssembly: the part used here.
declare const WebAssembly: {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }>
}

let loaded: Promise<SchemaEngineBindings> | undefined

/**
 * A Rust panic writes its message to this global (which the engine expects its host to provide), then
 * traps. The trap mostly surfaces as an uncaught "RuntimeError: unreachable" from a microtask, out of
 * reach of the caller's await, so the message is logged here, where it is still known. The Prisma client
 * runtime sets its own registry when it loads (its panic error carries the message too, which serves as
 * well): ours is only installed where there is none.
 */
let panicLog: DbLogger | undefined
;(globalThis as { PRISMA_WASM_PANIC_REGISTRY?: unknown }).PRISMA_WASM_PANIC_REGISTRY ??= {
  set_message (message: string) {
    loaded = undefined // the instance is unusable after a panic: the next engine gets a fresh one
    panicLog?.error({ panic: message }, 'schema engine panicked')
  },
}

/**
 * The engine arms timeouts (10 s ones, e.g. around its advisory lock) with setTimeout and never clears
 * them, so a finished command would keep the process alive for 10 s. They are tracked here and cleared
 * once no engine is open any more; while one is, they run as the engine meant.
 */
const timers = new Set<NodeJS.Timeout>()
let openEngines = 0

/**
 * Instantiates the wasm once per process (again after a panic). The package's own entry point does
 * `import * as wasm from "./schema_engine_bg.wasm"`, which Node 20 cannot load, so we do its three steps.
 */
export function loadSchemaEngineWasm (): Promise<SchemaEngineBindings> {
  loaded ??= (async () => {
    const glue = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg')
    const bytes = await readFile(join(dirname(glue), 'schema_engine_bg.wasm'))
    const imports: Record<string, unknown> = { ...bindings }
    for (const name of Object.keys(imports).filter((n) => n.startsWith('__wbg_setTimeout_'))) {
      imports[name] = (callback: () => void, ms: number) => {
        const timer = setTimeout(() => {
          timers.delete(timer)
          callback()
        }, ms >>> 0)
        timers.add(timer)
        return timer
      }
    }
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': imports })
    bindings.__wbg_set_wasm(instance.exports)
    ;(instance.exports.__wbindgen_start as () => void)()
    return bindings
  })()
  return loaded
}

/** Counts an engine as open: its timeouts must keep running. Its panics go to `log`. */
export function engineOpened (log: DbLogger): void {
  openEngines++
  panicLog = log
}

/** Counts an engine as closed; the last one out clears the timeouts left behind. */
export function engineClosed (): void {
  if (--openEngines > 0) return
  for (const timer of timers) clearTimeout(timer)
  timers.clear()
}
