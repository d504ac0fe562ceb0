// For users.
export { crontab, Crontab, type CrontabFields, type CronField } from "./crontab.js";
export { every, Interval, type IntervalFields } from "./interval.js";
export { zoneOf, type Zone } from "./zone.js";
