"""The clinicians' web portal: HTML pages over the same models and job life cycle as the API."""
