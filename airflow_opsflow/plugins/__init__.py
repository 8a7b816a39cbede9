"""opsflow's Airflow plugin: what it adds to Airflow's API server (the REST API of ``api.py`` under
``/opsflow``). Registered by the distribution's ``airflow.plugins`` entry point (``plugin.py``).

Shell layer: it reads Airflow's auth, configuration and connections, and calls the Airflow-free flows.
"""
