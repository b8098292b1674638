// Validates every KEDA object in the YAML stream given as argv[2] against the schemas
// @kubernetes-models/keda generates from KEDA's published CRDs. Exit 1 on any invalid one.
import fs from "fs";
import yaml from "js-yaml";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

let invalid = 0;
for (const doc of yaml.loadAll(fs.readFileSync(process.argv[2], "utf8"))) {
  if (!doc || doc.apiVersion !== "keda.sh/v1alpha1") continue;
  const Model = keda[doc.kind];
  if (!Model) {
    invalid++;
    console.log(`INVALID ${doc.kind}/${doc.metadata?.name}: unknown KEDA kind`);
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`valid ${doc.kind}/${doc.metadata.name}`);
  } catch (error) {
    invalid++;
    console.log(`INVALID ${doc.kind}/${doc.metadata?.name}: ${error.message}`);
  }
}
process.exit(invalid ? 1 : 0);
