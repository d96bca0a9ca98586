"""read: FHIR records -> pathway inputs (`PathwayInputs`), one module per record family; each fact
keeps the resource it came from. Value sets are data files in `rules/valuesets/`."""
