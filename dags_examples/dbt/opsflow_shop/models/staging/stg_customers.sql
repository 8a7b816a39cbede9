select
    id as customer_id,
    name,
    email,
    country,
    plan,
    created_at
from {{ source('ops', 'customers') }}
