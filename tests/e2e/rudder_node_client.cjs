// Sends track, screen, identify, page and group with the real, unmodified @rudderstack/rudder-sdk-node, its options
// left at their defaults (gzip on, flushAt 20, retryCount 3) but the data plane URL, then prints one JSON line: every
// error it reported. errorHandler only observes: it changes nothing on the wire. Used by test_segment_libraries.py.
// Usage: node rudder_node_client.cjs HOST WRITE_KEY CALLS_JSON
"use strict";
const Analytics = require("@rudderstack/rudder-sdk-node");

async function main() {
  const [host, writeKey, callsJson] = process.argv.slice(2);
  const calls = JSON.parse(callsJson);
  const errors = [];
  const report = (error) =>
    errors.push({ code: error.response ? error.response.status : error.code, reason: String(error.message) });
  const analytics = new Analytics(writeKey, { dataPlaneUrl: host, errorHandler: report });
  for (const call of calls) {
    const { method, ...params } = call;
    analytics[method](params);
  }
  await analytics.flush();
  process.stdout.write(JSON.stringify({ errors }) + "\n");
}

main().then(
  () => process.exit(process.exitCode || 0),
  (error) => {
    process.stdout.write(JSON.stringify({ errors: [{ code: "crash", reason: String(error) }] }) + "\n");
    process.exit(1);
  },
);
