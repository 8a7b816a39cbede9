-- Payments are never negative: a refund is its own status, not a negative amount.
{{ config(warn_if='>0', error_if='>50', meta={'owner': 'payments-ops'}) }}
select payment_id, customer_id, amount
from {{ ref('stg_payments') }}
where amount <= 0
