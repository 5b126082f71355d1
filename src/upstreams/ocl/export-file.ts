/**
 * Reads the records out of a downloaded OCL export: the zip's `export.json` entry is inflated as a stream
 * and fed to the {@link ExportJsonScanner}, so memory holds one chunk and one record, whatever the size.
 *
 * A zip keeps its directory at the end, so yauzl needs random access: the download is spooled to a temp
 * file first (see export-download.ts) and read from there.
 */
import { addAbortSignal } from 'node:stream'
import { crc32 } from 'node:zlib'
import yauzl, { type Entry, type ZipFile } from 'yauzl'
import { UpstreamError } from '../types.js'
import { ExportJsonScanner, type ExportElement } from './export-json.js'

/** How far the reading has got: bytes of export.json scanned, of `totalBytes` (from the zip's directory). */
export interface ExportReadProgress { bytes: number, totalBytes: number }

/** Receives the records of each chunk, in file order; awaited before the next chunk is read. */
export type ExportSink = (elements: ExportElement[], progress: ExportReadProgress) => Promise<void>

const ENTRY = 'export.json'
const invalid = (message: string): UpstreamError => new UpstreamError('invalid_upstream_response', `OCL export file ${message}`)

async function findEntry (zip: ZipFile): Promise<Entry | undefined> {
  // OCL writes one entry named export.json; a folder in front of the name is tolerated.
  for await (const entry of zip.eachEntry()) {
    if (entry.fileName === ENTRY || entry.fileName.endsWith(`/${ENTRY}`)) return entry
  }
  return undefined
}

/**
 * Streams the records of the export zip at `path` into `sink`. Zip, inflate and JSON faults become
 * `invalid_upstream_response`; an abort rejects with the signal's reason; the sink's own errors (a lost
 * lease, say) pass through untouched.
 */
export async function readExportZip (path: string, signal: AbortSignal, sink: ExportSink): Promise<void> {
  signal.throwIfAborted()
  let zip: ZipFile
  try {
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false })
  } catch {
    throw invalid('is not a valid zip archive')
  }
  let sinkFailure: { error: unknown } | undefined
  try {
    const entry = await findEntry(zip)
    if (entry === undefined) throw invalid(`has no ${ENTRY}`)
    const stream = addAbortSignal(signal, await zip.openReadStreamPromise(entry))
    const scanner = new ExportJsonScanner()
    const progress: ExportReadProgress = { bytes: 0, totalBytes: entry.uncompressedSize }
    let crc = 0
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      progress.bytes += chunk.length
      crc = crc32(chunk, crc)
      const elements = scanner.write(chunk)
      try {
        await sink(elements, progress)
      } catch (error) {
        sinkFailure = { error }
        throw error
      }
    }
    // yauzl checks sizes but not the checksum: a corrupted download could otherwise inflate into wrong data.
    if ((crc >>> 0) !== (entry.crc32 >>> 0)) throw invalid(`has a ${ENTRY} that fails its CRC-32 check`)
    scanner.end()
  } catch (err) {
    if (sinkFailure !== undefined) throw sinkFailure.error
    if (signal.aborted) throw signal.reason
    if (err instanceof UpstreamError) throw err
    // yauzl and zlib errors: a truncated or corrupt archive. Their messages carry no content.
    throw invalid(`could not be unzipped (${err instanceof Error ? err.message.slice(0, 120) : 'unknown error'})`)
  } finally {
    zip.close()
  }
}
