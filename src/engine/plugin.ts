/**
 * The job engine inside the gateway process: the job service the routes use, the worker that runs jobs,
 * the listener that wakes it (and delivers cancels, changes of finished jobs' views, and the saved pages and ends
 * that wake readers following a job's results), the expiry sweeper, and the deliverer of completion callbacks
 * (woken whenever a job ends, here or, through the listener, on another replica). Workers start once the server
 * listens (sandbox adapters call this server) and stop before the database closes. The cache of finished jobs'
 * views works only while the listener holds its connection, so without workers (startWorkers false: tests, the
 * OpenAPI export) every view comes from the database.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Logger } from 'pino'
import { jobRetentionSeconds, type Config } from '../config.js'
import type { CallbackSender } from '../contract/callback.js'
import type { JobSummary } from '../domain/job.js'
import { CallbackDeliverer } from './callbacks.js'
import { JobService } from './job-service.js'
import { JobViewCache } from './job-view-cache.js'
import { JobListener } from './notifications.js'
import { Sweeper } from './sweeper.js'
import { Worker } from './worker.js'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobService
    worker: Worker
    sweeper: Sweeper
    callbacks: CallbackDeliverer
  }
}

/** What completion callbacks need from the wiring: the outbound client, and the job view they carry. */
export interface CallbackWiring { sender: CallbackSender, view: (job: JobSummary) => unknown }

export interface EngineOptions { config: Config, databaseUrl: string, startWorkers: boolean, callbacks: CallbackWiring }

export const enginePlugin = fp(async (app: FastifyInstance, opts: EngineOptions) => {
  const { config } = opts
  // The app's logger is always a pino instance (see createLogger); Fastify only types it more loosely.
  const log = app.log.child({ component: 'engine' }) as unknown as Logger
  const observe = app.metrics.observe
  const sweeper = new Sweeper(app.db.pool, config.SWEEP_INTERVAL_SECONDS * 1000, log, {
    resultTtlSeconds: config.RESULT_TTL_SECONDS,
    jobRetentionSeconds: jobRetentionSeconds(config),
    idempotencyKeyTtlHours: config.IDEMPOTENCY_KEY_TTL_HOURS,
  }, observe)
  const callbacks = new CallbackDeliverer(app.db.pool, opts.callbacks.sender, client => config.CALLBACK_SECRETS.get(client), opts.callbacks.view, {
    retrySchedule: config.CALLBACK_RETRY_SCHEDULE_SECONDS,
    timeoutSeconds: config.CALLBACK_TIMEOUT_SECONDS,
    pollSeconds: config.WORKER_POLL_SECONDS,
    allowedOrigins: config.CALLBACK_ALLOWED_ORIGINS,
  }, log, observe)
  const jobEnded = (): void => callbacks.wake()
  const views = new JobViewCache()
  const service = new JobService(app.db.prisma, app.db.pool, config.RESULT_TTL_SECONDS, () => sweeper.wake(), observe, views, config.IDEMPOTENCY_KEY_TTL_HOURS,
    config.MAX_ACTIVE_JOBS_PER_CLIENT, jobEnded)
  const worker = new Worker(app.db.pool, name => app.upstreams.adapterFor(name), {
    concurrency: config.WORKER_CONCURRENCY,
    leaseSeconds: config.LEASE_SECONDS,
    pollSeconds: config.WORKER_POLL_SECONDS,
    maxAttempts: config.JOB_MAX_ATTEMPTS,
    ttlSeconds: config.RESULT_TTL_SECONDS,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    maxRecordBytes: app.upstreams.client.limits.maxRecordBytes,
    onJobEnded: jobEnded,
    upstreams: app.upstreams.list.map(u => u.definition.name),
  }, log, observe)
  app.metrics.leasesFrom(() => worker.leasesHeld)
  const listener = new JobListener(opts.databaseUrl, n => {
    switch (n.kind) {
      case 'new': worker.wake(); break
      case 'cancel': views.invalidate(n.jobId); worker.cancel(n.jobId); service.waits.wake(n.jobId); callbacks.wake(); break
      case 'changed': views.invalidate(n.jobId); break
      case 'saved': service.waits.wake(n.jobId); break
      // A job ended on some replica: its callback, if it has one, is due now.
      case 'ended': service.waits.wake(n.jobId); callbacks.wake(); break
      case 'connected': views.setListening(true); service.waits.setListening(true); break
      case 'disconnected': views.setListening(false); service.waits.setListening(false); break
    }
  }, log)
  app.decorate('jobs', service)
  app.decorate('worker', worker)
  app.decorate('sweeper', sweeper)
  app.decorate('callbacks', callbacks)

  if (opts.startWorkers) {
    app.addHook('onListen', async () => {
      listener.start()
      worker.start()
      sweeper.start()
      callbacks.start()
    })
  }
  app.addHook('preClose', async () => {
    // Readers following running jobs are broken off now, not at the shutdown deadline: their jobs may run for hours.
    service.waits.close()
    await worker.stop()
    // A token refresh may outlive the jobs that needed it: its answer holds the only copy of the rotated tokens.
    await app.upstreams.drain()
    // No job runs now. Their upstream sockets go too: in sandbox mode one may be an idle connection to this
    // server, which the server's close would otherwise wait for (the client is otherwise closed after it).
    await app.upstreams.client.destroy()
    await Promise.all([listener.stop(), sweeper.stop(), callbacks.stop()])
    await opts.callbacks.sender.close()
  })
}, { name: 'engine', dependencies: ['db', 'metrics', 'upstreams'] })
