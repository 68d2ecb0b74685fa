// Sends track, screen, identify, page and group with the real, unmodified @segment/analytics-node to a host, then
// prints one JSON line: the HTTP statuses it got and every error it reported. Used by test_segment_libraries.py.
// Usage: node segment_node_client.cjs HOST WRITE_KEY CALLS_JSON
"use strict";
const { Analytics } = require("@segment/analytics-node");

async function main() {
  const [host, writeKey, callsJson] = process.argv.slice(2);
  const calls = JSON.parse(callsJson);
  const analytics = new Analytics({ writeKey, host, flushAt: 100, flushInterval: 200, maxRetries: 1 });
  const statuses = [];
  const errors = [];
  analytics.on("http_response", (response) => statuses.push(response.status));
  analytics.on("error", (error) => errors.push({ code: error.code, reason: String(error.reason) }));
  for (const call of calls) {
    const { method, ...params } = call;
    analytics[method](params);
  }
  await analytics.closeAndFlush({ timeout: 20000 });
  process.stdout.write(JSON.stringify({ statuses, errors }) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ statuses: [], errors: [{ code: "crash", reason: String(error) }] }) + "\n");
  process.exitCode = 1;
});
