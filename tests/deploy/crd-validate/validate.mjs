// Reads a JSON array of Kubernetes objects on stdin; validates each Prometheus Operator
// object with @kubernetes-models/prometheus-operator (validators generated from the
// operator's CRD schemas: types, enums, required fields, formats). Prints a JSON object:
// {"checked": ["Kind/name", ...], "errors": ["Kind/name: message", ...]}.
// Unknown fields are not errors there (the API server prunes them); the hand-written
// schemas in ../schemas/crds.yaml catch those.
const MODELS = {
  "monitoring.coreos.com/v1/PodMonitor": "v1/PodMonitor",
  "monitoring.coreos.com/v1/ServiceMonitor": "v1/ServiceMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "v1/PrometheusRule",
  "monitoring.coreos.com/v1alpha1/AlertmanagerConfig": "v1alpha1/AlertmanagerConfig",
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const objects = JSON.parse(input);
const checked = [];
const errors = [];
for (const obj of objects) {
  const model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!model) continue;
  const name = `${obj.kind}/${obj.metadata.name}`;
  const kind = model.split("/")[1];
  const module = await import(
    `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${model}`
  );
  checked.push(name);
  try {
    new module[kind](obj).validate();
  } catch (error) {
    errors.push(`${name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify({ checked, errors }));
