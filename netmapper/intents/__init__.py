"""ClientIntents from edges: export.py picks each client's targets, documents.py lays out one document
per apiVersion (v1alpha3.py the old layout), yaml_writer.py/output.py write them, crd.py validates
them against the CRD shipped in data/."""
