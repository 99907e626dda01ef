"""The rig's cases as LAVA jobs: export (job definitions + deploy artifacts), validation with
LAVA's own schema, local runs with lava-run, submit/collect over XML-RPC, and LAVA's logs mapped
back into a normal results directory (verdict.json per case, JUnit)."""
