/**
 * Line 10: a large system export of the SMART Health IT bulk-data-server (the peer from the shared `peers/` folder,
 * test/helpers/smart-peer-process.ts) read by the gateway, against a plain client (test/helpers/fhir-plain-client.ts)
 * downloading the same files in the same run.
 *
 * The export is `_type=Observation` on the peer's database multiplied `M` times (one type, so the copies get
 * prefixed ids and no record is another's duplicate), `PAGE` records a file. The peer builds the export at its
 * own pace (status 202, `Retry-After: 1`) and, when the manifest is out, builds each file again as it is
 * downloaded, gzipped, one row at a time: both phases are the peer's work, whoever the client is.
 *
 * The line compares the download phase: from the moment the peer served the manifest (its access-log line of the
 * status `200`, read as it arrives, the same clock for both clients) to the last record downloaded (plain client)
 * or to the client seeing the job `completed` (gateway, polled every 100 ms: every record stored in PostgreSQL).
 * The build phase before it is the peer's, and both clients wait it out at the same cadence (one status poll a
 * second, as the peer's Retry-After asks); the whole export, kick-off to done, is in the note.
 *
 * Each side runs on a peer process of its own, started for it: the peer's rate limiter (60 status polls a
 * minute per IP, then 5 minutes of 429) counts both clients' polls, and a fresh process clears it. Each side
 * runs a small warm-up export first on its peer (and, for the gateway, in its process), so neither meets a cold
 * peer.
 *
 * The peer spends 120–160 µs of CPU per record (its main thread, and SQLite and gzip on libuv's pool), and how much
 * of the cores it gets moves with whatever else the (shared, virtual) machine runs: single runs of each side gave ratios from 1.09× to 1.32× for the same
 * code. So the sides run in rounds, in the order plain, gateway, gateway, plain (ABBA: a drift in the machine's
 * speed over the line weighs on both sides alike), and the ratio is of their summed download times. Every round's
 * figures are in the line's data.
 */
import { plainExportCounted } from '../../test/helpers/fhir-plain-client.js'
import { PEER_MISSING, launchPeer, peerAvailable, type PeerProcess } from '../../test/helpers/smart-peer-process.js'
import { cpuMeter, processCpu } from '../cpu.js'
import { startGateway } from '../gateway-process.js'
import { submitJob, waitForJob, warmUpJob } from '../jobs.js'
import { megabytes, microsEach, perSecond, seconds, times, type Line } from '../report.js'
import { PEAK_RSS_BOUND, PEAK_RSS_BOUND_BYTES } from './bulk-job.js'

/** Database multiplier: 2925 Observations a pass, so 204,750 records. */
const M = 70
/** Records per file (the peer's `page`): 9 files. */
const PAGE = 25_000
const TYPE = 'Observation'
/** The warm-up export: 21 patients a pass, 1470 records, about a second for the peer. */
const WARM_UP_TYPE = 'Patient'
const TARGET_RATIO = 1.2

/** The peer's access-log line of a status poll answered with the manifest. */
const MANIFEST_LINE = /"GET \/fhir\/bulkstatus\/\S+ HTTP\/1\.1" 200 /
const STATUS_LINE = /"GET \/fhir\/bulkstatus\/\S+ HTTP\/1\.1" \d{3} /
const TOO_MANY_LINE = /" 429 /
/** A file download, logged when the peer has sent its last byte. */
const FILE_LINE = /"GET \/\S+\/fhir\/bulkfiles\/\S+ HTTP\/1\.1" 200 /

/** When (performance.now()) the peer logged the first manifest answer after `since`. */
function manifestServedAt (peer: PeerProcess, since: number): number {
  const i = peer.accessLog.findIndex((line, n) => peer.accessLogSeenAt[n]! >= since && MANIFEST_LINE.test(line))
  if (i === -1) throw new Error('the peer logged no manifest answer (status 200) for the measured export')
  return peer.accessLogSeenAt[i]!
}

/** The measured export's status polls and 429s, from the peer's access log after `since`. */
function pollsSince (peer: PeerProcess, since: number): { polls: number } {
  const lines = peer.accessLog.filter((_, n) => peer.accessLogSeenAt[n]! >= since)
  const tooMany = lines.filter(l => TOO_MANY_LINE.test(l)).length
  // A 429 would measure the limiter's 5-minute block, not a client.
  if (tooMany > 0) throw new Error(`the peer's rate limiter answered 429 ${tooMany} time(s) during the measured export`)
  return { polls: lines.filter(l => STATUS_LINE.test(l)).length }
}

/**
 * Seconds each of `files` files took, by the peer's access log: from the manifest answer (or the file before) to
 * the peer's line for it. The line comes when the response has finished, which may be just after the client
 * has the last byte: waits up to 5 s for all of them.
 */
async function fileSeconds (peer: PeerProcess, served: number, files: number): Promise<number[]> {
  const ends = (): number[] => peer.accessLog.flatMap((line, n) => peer.accessLogSeenAt[n]! > served && FILE_LINE.test(line) ? [peer.accessLogSeenAt[n]!] : [])
  for (let i = 0; i < 50 && ends().length < files; i++) await new Promise(resolve => setTimeout(resolve, 100))
  return ends().map((end, i, all) => Math.round(end - (i === 0 ? served : all[i - 1]!)) / 1000)
}

interface Side {
  /** Kick-off (or POST /jobs) → done. */
  totalSeconds: number
  /** The peer's manifest answer → done. */
  downloadSeconds: number
  /** Kick-off → the peer's manifest answer. */
  buildSeconds: number
  records: number
  statusPolls: number
  peerCpu: number
  fileSeconds: number[]
}

async function plainSide (sim: Record<string, unknown>, log: (s: string) => void): Promise<Side & { bytes: number, files: number, clientCpu: number }> {
  const peer = await launchPeer({ readyTimeoutMs: 600_000 })
  try {
    const base = peer.simBase(sim)
    await plainExportCounted({ base, kind: 'system', params: { _type: WARM_UP_TYPE }, timeoutMs: 300_000 })
    log(`fhir: plain client, system export of ${TYPE} (m=${M}, ${PAGE} a file)`)
    const peerCpu0 = processCpu(peer.pid)
    const me0 = process.cpuUsage()
    const started = performance.now()
    const got = await plainExportCounted({ base, kind: 'system', params: { _type: TYPE }, timeoutMs: 600_000 })
    const me = process.cpuUsage(me0)
    const peerCpu = processCpu(peer.pid) - peerCpu0
    const expected = got.manifest.output.reduce((sum, f) => sum + (f.count ?? 0), 0)
    if (got.records !== expected) throw new Error(`the plain client read ${got.records} records, the manifest lists ${expected}`)
    const served = manifestServedAt(peer, started)
    return {
      totalSeconds: (got.doneAt - started) / 1000,
      downloadSeconds: (got.doneAt - served) / 1000,
      buildSeconds: (served - started) / 1000,
      records: got.records,
      bytes: got.bytes,
      files: got.manifest.output.length,
      statusPolls: pollsSince(peer, started).polls,
      peerCpu,
      fileSeconds: await fileSeconds(peer, served, got.manifest.output.length),
      clientCpu: (me.user + me.system) / 1e6,
    }
  } finally {
    await peer.stop()
  }
}

async function gatewaySide (databaseUrl: string, sim: Record<string, unknown>, log: (s: string) => void): Promise<Side & {
  hwm: number,
  idleRss: number,
  /** RSS after the warm-up job, and the largest sampled during the measured one. */
  warmRss: number,
  jobRss: number,
  cpu: { gateway: number, postgres: number | null, bench: number },
}> {
  const peer = await launchPeer({ readyTimeoutMs: 600_000 })
  try {
    // FHIR_MIN_RETRY_AFTER_SECONDS stays at its default (1 s): the gateway polls as the peer's Retry-After: 1 asks.
    const gw = await startGateway(databaseUrl, { UPSTREAMS: 'fhir', FHIR_BASE_URL: peer.simBase(sim) })
    try {
      const idleRss = gw.memory().rss
      await warmUpJob(gw, { upstream: 'fhir', resource: 'system', params: { _type: WARM_UP_TYPE } })
      log(`fhir: gateway job, the same export (m=${M}, ${PAGE} a file)`)
      const meter = await cpuMeter(databaseUrl, gw.pid)
      const peerCpu0 = processCpu(peer.pid)
      const started = performance.now()
      const job = await submitJob(gw, { upstream: 'fhir', resource: 'system', params: { _type: TYPE } })
      // The largest RSS sampled at each poll (every 100 ms) during the measured job; VmHWM is the kernel's peak.
      let jobRss = 0
      const warmRss = gw.memory().rss
      const { job: done, seenAt } = await waitForJob(gw, job.id, {
        pollMs: 100, timeoutMs: 900_000, onPoll: () => { jobRss = Math.max(jobRss, gw.memory().rss) },
      })
      const cpu = meter()
      const peerCpu = processCpu(peer.pid) - peerCpu0
      const served = manifestServedAt(peer, started)
      const files = peer.accessLog.filter((line, n) => peer.accessLogSeenAt[n]! > served && FILE_LINE.test(line)).length
      return {
        totalSeconds: (seenAt - started) / 1000,
        downloadSeconds: (seenAt - served) / 1000,
        buildSeconds: (served - started) / 1000,
        records: done.progress.records,
        statusPolls: pollsSince(peer, started).polls,
        peerCpu,
        fileSeconds: await fileSeconds(peer, served, files),
        hwm: gw.memory().hwm,
        idleRss,
        warmRss,
        jobRss,
        cpu,
      }
    } finally {
      await gw.stop()
    }
  } finally {
    await peer.stop()
  }
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0)
const list = (xs: readonly number[]): string => xs.map(x => seconds(x)).join(', ')

export async function fhirExport (databaseUrl: string, log: (s: string) => void): Promise<Line[]> {
  if (!peerAvailable()) throw new Error(PEER_MISSING)
  const sim = { m: M, page: PAGE }
  log('fhir: starting the SMART bulk-data-server peer (installs it first if needed: minutes)')
  // ABBA: plain, gateway, gateway, plain.
  const plains = [await plainSide(sim, log)]
  const gws = [await gatewaySide(databaseUrl, sim, log)]
  gws.push(await gatewaySide(databaseUrl, sim, log))
  plains.push(await plainSide(sim, log))
  const n = plains[0]!.records
  for (const side of [...plains, ...gws]) {
    if (side.records !== n) throw new Error(`a round read or stored ${side.records} records, the first plain client ${n}`)
  }

  const gwDownload = gws.map(g => g.downloadSeconds)
  const plainDownload = plains.map(p => p.downloadSeconds)
  const ratio = sum(gwDownload) / sum(plainDownload)
  const totalRatio = sum(gws.map(g => g.totalSeconds)) / sum(plains.map(p => p.totalSeconds))
  const hwm = Math.max(...gws.map(g => g.hwm))
  const memoryOk = hwm < PEAK_RSS_BOUND_BYTES
  const plain = plains[0]!
  const recordBytes = plain.bytes / n
  const gwMean = sum(gwDownload) / gws.length
  const plainMean = sum(plainDownload) / plains.length
  const cpu = (pick: (g: typeof gws[number]) => number | null): string => gws.map(g => microsEach(pick(g), n)).join(' / ')
  return [{
    id: '10',
    what: `FHIR system export of the SMART server (m=${M}): ${n.toLocaleString('en-US')} ${TYPE} in ${plain.files} files, manifest → done, 2 rounds a side`,
    gateway: `${seconds(gwMean)} a round (${perSecond(n / gwMean, 'rec')}), peak RSS ${megabytes(hwm)}`,
    baseline: `${seconds(plainMean)} a round, plain client`,
    ratio: times(ratio),
    target: `≤ ${TARGET_RATIO}× plain client; peak RSS ${PEAK_RSS_BOUND}`,
    pass: ratio <= TARGET_RATIO && memoryOk,
    data: {
      m: M,
      page: PAGE,
      type: TYPE,
      records: n,
      files: plain.files,
      bytes: plain.bytes,
      recordBytes,
      order: ['plain', 'gateway', 'gateway', 'plain'],
      gateway: gws,
      plain: plains,
      ratio,
      roundRatios: gwDownload.map((g, i) => g / plainDownload[i]!),
      totalRatio,
      peakRssBoundBytes: PEAK_RSS_BOUND_BYTES,
    },
    note: 'download phase (the peer\'s manifest answer → done), rounds in the order plain, gateway, gateway, plain: ' +
      `gateway ${list(gwDownload)}, plain ${list(plainDownload)}; records of ${Math.round(recordBytes)} B gzipped by the peer; ` +
      `kick-off → done: ${times(totalRatio)}; ` +
      `peer build: ${list(gws.map(g => g.buildSeconds))} / ${list(plains.map(p => p.buildSeconds))}, ` +
      `${gws.map(g => g.statusPolls).join(', ')} / ${plains.map(p => p.statusPolls).join(', ')} status polls; ` +
      `CPU per record: gateway ${cpu(g => g.cpu.gateway)}, PostgreSQL ${cpu(g => g.cpu.postgres)}, ` +
      `peer ${cpu(g => g.peerCpu)} (plain rounds: ${plains.map(p => microsEach(p.peerCpu, n)).join(' / ')}), ` +
      `plain client ${plains.map(p => microsEach(p.clientCpu, n)).join(' / ')}; ` +
      `RSS: idle ${megabytes(gws[0]!.idleRss)}, after the warm-up ${megabytes(gws[0]!.warmRss)}, largest sampled during an export ${megabytes(Math.max(...gws.map(g => g.jobRss)))}`,
  }]
}
