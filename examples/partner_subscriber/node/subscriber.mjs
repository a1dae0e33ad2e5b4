// A partner agency's subscriber in Node.js: kafkajs, the CloudEvents SDK for JavaScript,
// Ajv (JSON Schema 2020-12). The same job as ../confluent_subscriber.py:
//
// - joins the consumer group (`--group partner.<your name>.<app>`), commits after handling;
// - decodes CloudEvents binary mode with the SDK (`Kafka.toEvent`; header values are
//   passed to it as strings);
// - fetches each event's schema from `<--schema-base-url><ce_dataschema>` once per type,
//   checks its `$id` is that header, and validates the body;
// - drops redeliveries by ce_id; prints one JSON line per valid event on stdout, one per
//   invalid event on stderr, a summary on exit (status 1 if any event was invalid).
//
//   npm ci
//   node subscriber.mjs --bootstrap kafka.example.gov.cn:9094 --security-protocol SASL_SSL \
//     --sasl-username hotline-12345 --sasl-password-file ./password --ssl-cafile ./jingmin-ca.crt \
//     --schema-base-url https://jingmin.example.gov.cn/schemas/ \
//     --group partner.hotline-12345.cases --topic intake.hotline12345.public.v1

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { Kafka as CloudEventsKafka } from "cloudevents";
import { Kafka, logLevel } from "kafkajs";

const REQUIRED = ["ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_dataschema"];

const { values: args } = parseArgs({
  options: {
    bootstrap: { type: "string" },
    group: { type: "string" },
    topic: { type: "string", multiple: true },
    "schema-base-url": { type: "string" },
    "security-protocol": { type: "string", default: "SASL_SSL" },
    "sasl-username": { type: "string" },
    "sasl-password-file": { type: "string" },
    "ssl-cafile": { type: "string" },
    "max-messages": { type: "string" },
    "idle-timeout": { type: "string", default: "30" },
  },
});
for (const name of ["bootstrap", "group", "topic", "schema-base-url"]) {
  if (!args[name]) {
    console.error(`--${name} is required`);
    process.exit(2);
  }
}

const protocol = args["security-protocol"];
const kafka = new Kafka({
  clientId: "jingmin-partner-node",
  brokers: args.bootstrap.split(","),
  logLevel: logLevel.NOTHING,
  ssl: protocol.endsWith("SSL")
    ? args["ssl-cafile"] ? { ca: [readFileSync(args["ssl-cafile"], "utf-8")] } : true
    : false,
  sasl: protocol.startsWith("SASL")
    ? {
        mechanism: "scram-sha-512",
        username: args["sasl-username"],
        password: readFileSync(args["sasl-password-file"], "utf-8").trim(),
      }
    : undefined,
});

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const validators = new Map();

async function validatorFor(dataschema) {
  if (!validators.has(dataschema)) {
    const url = args["schema-base-url"] + dataschema;
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const schema = await response.json();
    if (schema.$id !== dataschema) throw new Error(`${url} is not the schema ${dataschema}`);
    validators.set(dataschema, ajv.compile(schema));
  }
  return validators.get(dataschema);
}

async function decode(topic, partition, message) {
  const headers = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined && value !== null) headers[name] = value.toString();
  }
  const problems = REQUIRED.filter((h) => !(h in headers)).map((h) => `missing header ${h}`);
  const out = { topic, partition, offset: Number(message.offset), key: message.key?.toString() };
  let event;
  try {
    event = CloudEventsKafka.toEvent({
      key: out.key,
      value: message.value?.toString(),
      headers,
    });
  } catch (error) {
    return [out, [...problems, `not a binary-mode CloudEvent: ${error.message}`]];
  }
  const data = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
  Object.assign(out, {
    id: event.id,
    type: event.type,
    source: event.source,
    subject: event.subject,
    time: event.time,
    bureau: event.bureau,
    dataschema: event.dataschema,
    data,
  });
  if (event.specversion !== "1.0") problems.push(`specversion ${event.specversion} is not 1.0`);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    return [out, [...problems, "the body is not a JSON object"]];
  }
  try {
    const validate = await validatorFor(event.dataschema);
    if (!validate(data)) {
      problems.push(...validate.errors.map((e) => `${e.instancePath || "(body)"}: ${e.message}`));
    }
  } catch (error) {
    problems.push(`cannot fetch the schema ${event.dataschema}: ${error.message}`);
  }
  return [out, problems];
}

const counts = { received: 0, valid: 0, invalid: 0, duplicates: 0 };
const seen = new Set();
const max = args["max-messages"] ? Number(args["max-messages"]) : Infinity;
const idleMs = Number(args["idle-timeout"]) * 1000;
const consumer = kafka.consumer({ groupId: args.group });

let last = Date.now();
let finish;
const finished = new Promise((resolve) => (finish = resolve));

await consumer.connect();
for (const topic of args.topic) await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  autoCommit: false,
  eachMessage: async ({ topic, partition, message }) => {
    if (counts.received >= max) return;
    last = Date.now();
    counts.received += 1;
    const [event, problems] = await decode(topic, partition, message);
    if (problems.length) {
      counts.invalid += 1;
      console.error(JSON.stringify({ ...event, errors: problems }));
    } else if (seen.has(event.id)) {
      counts.duplicates += 1;
    } else {
      seen.add(event.id);
      counts.valid += 1;
      process.stdout.write(JSON.stringify(event) + "\n");
    }
    const next = (BigInt(message.offset) + 1n).toString();
    await consumer.commitOffsets([{ topic, partition, offset: next }]);
    if (counts.received >= max) finish();
  },
});
const idle = setInterval(() => {
  if (Date.now() - last > idleMs) finish();
}, 200);
await finished;
clearInterval(idle);
await consumer.disconnect();
console.error(JSON.stringify({ summary: counts }));
process.exit(counts.invalid ? 1 : 0);
