// Reads a JSON array of Kubernetes objects on stdin; validates each object of a custom
// resource group below with the validators its npm package generates from the operator's
// own API (types, enums, required fields, patterns, minimums):
//   monitoring.coreos.com  @kubernetes-models/prometheus-operator  (the operator's CRDs)
//   kafka.strimzi.io       @kubernetes-models/strimzi-kafka-operator (Strimzi's CRDs)
//   postgresql.cnpg.io     @kubernetes-models/cloudnative-pg (CloudNativePG's api/v1 types)
// Prints a JSON object: {"checked": ["Kind/name", ...], "errors": ["Kind/name: message", ...]}.
// An object of one of these groups whose apiVersion/kind has no model below is an error,
// so a new kind (or an old API version) cannot skip validation silently.
// Unknown fields are not errors there (the API server prunes them); the hand-written
// schemas in ../schemas/crds.yaml catch those.
const PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg",
};

// apiVersion/kind -> the model's module under its package (`<group>/<version>/<Kind>`).
const MODELS = Object.fromEntries(
  [
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "monitoring.coreos.com/v1alpha1/AlertmanagerConfig",
    // Strimzi's v1 API: the only one Strimzi 1.0 serves (0.49 to 0.51 serve it too).
    "kafka.strimzi.io/v1/Kafka",
    "kafka.strimzi.io/v1/KafkaNodePool",
    "kafka.strimzi.io/v1/KafkaTopic",
    "kafka.strimzi.io/v1/KafkaUser",
    "postgresql.cnpg.io/v1/Cluster",
    "postgresql.cnpg.io/v1/Database",
    "postgresql.cnpg.io/v1/Pooler",
    "postgresql.cnpg.io/v1/ScheduledBackup",
  ].map((key) => [key, key]),
);

let input = "";
for await (const chunk of process.stdin) input += chunk;
const objects = JSON.parse(input);
const checked = [];
const errors = [];
for (const obj of objects) {
  const group = String(obj.apiVersion ?? "").split("/")[0];
  if (!(group in PACKAGES)) continue;
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!model) {
    errors.push(`${name}: no validator for ${obj.apiVersion} ${obj.kind} (validate.mjs MODELS)`);
    continue;
  }
  const module = await import(`${PACKAGES[group]}/${model}`);
  checked.push(name);
  try {
    new module[obj.kind](obj).validate();
  } catch (error) {
    errors.push(`${name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify({ checked, errors }));
