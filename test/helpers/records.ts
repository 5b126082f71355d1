/** Records as text, for comparing what an adapter saved with the JSON text a simulator served. */
import type { RecordText } from '../../src/contract/adapter.js'

export const recordTexts = (records: readonly RecordText[]): string[] =>
  records.map(r => typeof r === 'string' ? r : Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('utf8'))
