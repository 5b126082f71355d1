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
import { UpstreamError } from '../../domain/errors.js'
import { tooLarge } from '../../contract/record-limits.js'
import { ExportJsonScanner, type ExportElement } from './export-json.js'

/** How far the reading has got: bytes of export.json scanned, of `totalBytes` (from the zip's directory). */
export interface ExportReadProgress { bytes: number, totalBytes: number }

/** Receives the records of each chunk, in file order; awaited before the next chunk is read. */
export type ExportSink = (elements: ExportElement[], progress: ExportReadProgress) => Promise<void>

const ENTRY = 'export.json'
/** Below this many inflated bytes the ratio is not judged: a small file of padding may compress far, harmlessly. */
const RATIO_FLOOR = 1024 * 1024

/**
 * What an export zip may hold: a zip bomb (a small download inflating to terabytes) is refused from its directory
 * when that tells, and otherwise while it inflates, as soon as a limit is crossed.
 */
export interface ExportFileLimits {
  /** Entries in the zip (OCL writes one). */
  maxEntries: number
  /** Bytes of export.json once inflated. */
  maxUncompressedBytes: number
  /** Inflated bytes per compressed byte of export.json, judged past the first MiB. */
  maxCompressionRatio: number
  /** One record's bytes (UPSTREAM_MAX_RECORD_BYTES). */
  maxRecordBytes: number
}

/** Throws upstream_response_too_large when `inflated` bytes of an entry of `compressed` bytes break a limit. */
function checkInflated (inflated: number, compressed: number, limits: ExportFileLimits): void {
  if (inflated > limits.maxUncompressedBytes) {
    throw tooLarge(`OCL export file's ${ENTRY}`, limits.maxUncompressedBytes, 'OCL_EXPORT_MAX_UNCOMPRESSED_BYTES')
  }
  if (inflated > RATIO_FLOOR && inflated > limits.maxCompressionRatio * Math.max(1, compressed)) {
    throw new UpstreamError('upstream_response_too_large',
      `OCL export file's ${ENTRY} inflates more than ${limits.maxCompressionRatio} times its compressed size (OCL_EXPORT_MAX_COMPRESSION_RATIO)`)
  }
}
const invalid = (message: string): UpstreamError => new UpstreamError('invalid_upstream_response', `OCL export file ${message}`)

async function findEntry (zip: ZipFile, maxEntries: number): Promise<Entry | undefined> {
  // The count is the zip's own directory's: refused before a single entry is read.
  if (zip.entryCount > maxEntries) {
    throw new UpstreamError('upstream_response_too_large', `OCL export file has ${zip.entryCount} entries, more than ${maxEntries} (OCL_EXPORT_MAX_ENTRIES)`)
  }
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
export async function readExportZip (path: string, signal: AbortSignal, sink: ExportSink, limits: ExportFileLimits): Promise<void> {
  signal.throwIfAborted()
  let zip: ZipFile
  try {
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false })
  } catch {
    throw invalid('is not a valid zip archive')
  }
  let sinkFailure: { error: unknown } | undefined
  try {
    const entry = await findEntry(zip, limits.maxEntries)
    if (entry === undefined) throw invalid(`has no ${ENTRY}`)
    // What the directory says is checked first; what inflates is counted below, since a directory can lie.
    checkInflated(entry.uncompressedSize, entry.compressedSize, limits)
    const stream = addAbortSignal(signal, await zip.openReadStreamPromise(entry))
    const scanner = new ExportJsonScanner({ maxRecordBytes: limits.maxRecordBytes })
    const progress: ExportReadProgress = { bytes: 0, totalBytes: entry.uncompressedSize }
    let crc = 0
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      progress.bytes += chunk.length
      // Leaving the loop destroys the stream: inflating stops at the chunk that crossed the limit.
      checkInflated(progress.bytes, entry.compressedSize, limits)
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
    // yauzl and zlib errors: a truncated or corrupt archive. Only a code is shown: yauzl's messages quote entry names.
    const code = (err as { code?: unknown } | null)?.code
    throw invalid(`could not be unzipped${typeof code === 'string' && /^[A-Z_]{1,40}$/.test(code) ? ` (${code})` : ''}`)
  } finally {
    zip.close()
  }
}
