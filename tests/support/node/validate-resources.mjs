// Validate Kubernetes custom resources with validators generated from their operators' CRDs
// (Strimzi, the Prometheus Operator), by the kubernetes-models packages.
// Usage: node validate-resources.mjs < resources.json (a JSON array of resources).
// Prints one JSON line per resource: {kind, name, errors}; exit 0 when every one is valid.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const resources = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const resource of resources) {
  const [group, version] = resource.apiVersion.split("/");
  const name = resource.metadata?.name;
  const pkg = PACKAGES[group];
  let errors = [];
  if (!pkg) {
    errors = [`no validator for API group ${group}`];
  } else {
    try {
      const module = await import(`${pkg}/${group}/${version}/${resource.kind}`);
      new module[resource.kind](resource).validate();
    } catch (e) {
      errors = [String(e.message ?? e)];
    }
  }
  if (errors.length) failed++;
  console.log(JSON.stringify({ kind: resource.kind, name, errors }));
}
process.exit(failed ? 1 : 0);
