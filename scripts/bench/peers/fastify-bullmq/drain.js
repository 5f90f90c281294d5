// The BullMQ side of scripts/bench/drain: adds N no-op jobs in bulk to a
// fresh queue, then drains them with one Worker (one Node process) at
// concurrency 50 and a processor that does nothing, and prints
//   BULLMQ jobs=N enqueue_s=S drain_s=S jobs_per_s=R
// where drain_s runs from the first job the processor saw to the N-th
// "completed" event. Unlike a Billow worker, this processor commits nothing
// to a database: the figure is BullMQ's queue machinery alone.
//
// Environment: REDIS_PORT (16381), REDISCLI_AUTH (the Redis password, if
// any), DRAIN_JOBS (100000), DRAIN_QUEUE (bench-drain), DRAIN_CONCURRENCY
// (50), DRAIN_TIMEOUT_S (600).
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const redisPort = Number(process.env.REDIS_PORT || 16381);
const total = Number(process.env.DRAIN_JOBS || 100000);
const queueName = process.env.DRAIN_QUEUE || 'bench-drain';
const concurrency = Number(process.env.DRAIN_CONCURRENCY || 50);
const timeoutS = Number(process.env.DRAIN_TIMEOUT_S || 600);
// Jobs per addBulk call: one Redis round trip (a MULTI) each.
const BULK = 1000;

const redis = () =>
  new IORedis({ host: '127.0.0.1', port: redisPort, password: process.env.REDISCLI_AUTH || undefined, maxRetriesPerRequest: null });

const queueConn = redis();
const queue = new Queue(queueName, { connection: queueConn });
await queue.obliterate({ force: true });

const t0 = performance.now();
for (let i = 0; i < total; i += BULK) {
  const jobs = [];
  for (let k = i; k < Math.min(total, i + BULK); k++)
    jobs.push({ name: 'system.noop', data: { tenant_id: 'ten_0000000000000000000000DEM0', n: k } });
  await queue.addBulk(jobs);
}
const enqueueS = (performance.now() - t0) / 1000;
const waiting = await queue.getWaitingCount();
if (waiting !== total) {
  console.error(`bullmq: ${waiting} jobs waiting after adding ${total}`);
  process.exit(1);
}

let first = 0;
let last = 0;
let completed = 0;
let failed = 0;
const workerConn = redis();
const worker = new Worker(queueName, async () => {
  if (first === 0) first = performance.now();
}, { connection: workerConn, concurrency, autorun: false });

const finished = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`not drained in ${timeoutS} s: ${completed} done`)),
    timeoutS * 1000);
  worker.on('completed', () => {
    completed++;
    if (completed === total) {
      last = performance.now();
      clearTimeout(timer);
      resolve();
    }
  });
  worker.on('failed', () => failed++);
});
worker.run();

try {
  await finished;
} catch (e) {
  console.error(`bullmq: ${e.message}`);
  process.exit(1);
}
await worker.close();
const drainS = (last - first) / 1000;
console.log(`BULLMQ jobs=${total} enqueue_s=${enqueueS.toFixed(3)} drain_s=${drainS.toFixed(3)} ` +
  `jobs_per_s=${Math.round(total / drainS)} failed=${failed}`);
await queue.obliterate({ force: true });
await queue.close();
queueConn.disconnect();
workerConn.disconnect();
process.exit(0);
