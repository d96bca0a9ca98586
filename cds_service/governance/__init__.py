"""governance: beside the flow: the judgement and feedback store, the override report and the
dashboard for CDS governance committees."""
