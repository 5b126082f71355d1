/** A test's own registry: every built-in upstream, and one line for `ledger`. */
import { Registry, registry as builtIn } from '../../../src/upstreams/registry.js'
import { ledger } from './ledger/definition.js'

export const registry = new Registry([...builtIn.upstreams, ledger], import.meta.url)
