/// <reference types="node" preserve="true" />
// For users: schedules, the scheduler, leases.
export { crontab, Crontab, type CrontabFields, type CronField } from "./crontab.js";
export { every, Interval, type IntervalFields } from "./interval.js";
export { zoneOf, type Zone } from "./zone.js";
export {
  defineSchedule,
  scheduleFromJson,
  toBeatSchedule,
  type ScheduleSpec,
  type ScheduleEntry,
  type EntrySendOptions,
  type MissedPolicy,
  type BeatSchedule,
  type ResolvedEntry,
} from "./schedule.js";
export { createBeat, nextRuns, formatInZone, BEAT_ENTRY_HEADER, BEAT_DUE_HEADER, type Beat, type BeatOptions, type BeatEvent } from "./beat.js";
export { beatTaskId } from "./task-id.js";
export { leaseFromUrl } from "./leases/index.js";
export { createSqliteLease, type SqliteLeaseOptions } from "./leases/sqlite.js";
export { createRedisLease, type RedisLeaseOptions } from "./leases/redis.js";
export { createAmqpLease, type AmqpLeaseOptions } from "./leases/amqp.js";
export { createSqsLease, type SqsLeaseOptions } from "./leases/sqs.js";
export { DEFAULT_LEASE_MS, type LeaderLease, type LeaseOptions, type EntryState } from "./lease.js";
export { instrumentBeat, type BeatMetrics } from "./metrics.js";
