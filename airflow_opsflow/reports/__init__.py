"""Reports (no Airflow imports): :mod:`.spec` says what to compute, :mod:`.build` computes it with pandas,
:mod:`.render` turns it into tables, files and charts within the channels' limits."""
