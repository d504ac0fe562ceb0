// The suites every Celeriac transport runs against its real broker (private: tests only).
export { describeTransportConformance, type TransportConformanceOptions, type TransportFactory } from "./transport-conformance.js";
export { describeExchangeConformance, type ExchangeConformanceOptions, type ExchangeTransportFactory } from "./exchange-conformance.js";
