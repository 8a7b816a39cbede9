select
    id as payment_id,
    customer_id,
    amount,
    currency,
    status,
    provider,
    created_at
from {{ source('ops', 'payments') }}
