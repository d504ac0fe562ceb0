// The no-op task the drain benchmarks run (same name as the Python benchmark app's).
export default function register(worker) {
  worker.register("bench.noop", () => null);
}
