// The task the RabbitMQ latency benchmark sends (bench/amqp-bench.mjs).
export default function register(worker) {
  worker.register("bench.echo", (_ctx, x) => x);
}
