/** The in-process {@link UpstreamServices}: for adapter tests and tools that run without the gateway's database. */
import { MemoryCredentialStore } from './credential-store.js'
import { MemoryBudgetStore } from './request-budget.js'
import type { UpstreamServices } from './types.js'

export function memoryServices (): UpstreamServices {
  return { budgets: new MemoryBudgetStore(), credentials: new MemoryCredentialStore() }
}
