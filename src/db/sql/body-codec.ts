/**
 * How a result_pages body holds its part's text (schema.prisma, ResultPage.codec). The gateway compresses the text
 * itself, with deflate at zlib's level 1, before it is sent: storing a 400 KB page as text cost PostgreSQL about
 * 10 ms of CPU (pglz, and the copies and memory of a value four times the size), deflate costs the gateway under
 * 2 ms and leaves a smaller body than pglz did, which PostgreSQL stores as it comes (STORAGE EXTERNAL). Reads
 * inflate in the gateway too. Both run on libuv's pool, off the event loop. Node's own zlib: no native dependency
 * to ship, and the stored form is plain raw deflate (RFC 1951) that any zlib reads.
 */
import { constants, deflateRaw, inflateRaw } from 'node:zlib'
import { CopyFormatError } from '../../domain/errors.js'

/** The text's bytes as they are (rows stored before the gateway compressed, and text deflate could not shrink). */
export const CODEC_PLAIN = 0
/** The text as a raw deflate stream (RFC 1951, no zlib or gzip header). */
export const CODEC_DEFLATE = 1

/** Bodies under this are stored as they are: too small to be toasted, so compressing them saves nothing worth it. */
const MIN_PACKED_BYTES = 2048

/**
 * The body to store for `text`, and its codec: deflated when that saves a quarter of the bytes at least (pglz's own
 * bar), else the text as it is, which then costs nothing to read. `text` is only read, and must not change until
 * the promise settles.
 */
export async function packBody (text: Buffer): Promise<{ codec: number, body: Buffer }> {
  if (text.length < MIN_PACKED_BYTES) return { codec: CODEC_PLAIN, body: text }
  const packed = await new Promise<Buffer>((resolve, reject) => {
    deflateRaw(text, { level: 1 }, (err, out) => { if (err === null) resolve(out); else reject(err) })
  })
  return packed.length <= text.length * 0.75 ? { codec: CODEC_DEFLATE, body: packed } : { codec: CODEC_PLAIN, body: text }
}

/**
 * The text of a stored body of codec {@link CODEC_DEFLATE}, which must be `bytes` long. A body that does not inflate
 * to exactly that is a {@link CopyFormatError} (the row's `ends` would not describe it); inflating stops at `bytes`,
 * so a damaged body cannot take more memory than its text and a byte.
 */
export async function unpackBody (body: Buffer, bytes: number): Promise<Buffer> {
  const text = await new Promise<Buffer>((resolve, reject) => {
    // One output chunk a byte longer than the text: zlib finds the stream's end in it, so the text is neither joined
    // from pieces nor followed by a second chunk allocated to look for more.
    inflateRaw(body, { chunkSize: Math.max(constants.Z_MIN_CHUNK, bytes + 1), maxOutputLength: Math.max(1, bytes) }, (err, out) => {
      if (err === null) resolve(out)
      else reject(new CopyFormatError(`a compressed body does not inflate to its text (${err.message})`))
    })
  })
  if (text.length !== bytes) throw new CopyFormatError('a compressed body does not inflate to its text\'s length')
  return text
}
