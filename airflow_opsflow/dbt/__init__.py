"""dbt artifacts as check results (no Airflow imports): :mod:`.artifacts` reads them, :mod:`.results`
converts them."""
