"""The schema of each rule type: one pydantic model per kind of rule-data file (value sets, order
names, local codes, card wording), each listing the keys it allows (cds_service/rules/loader.py)."""
