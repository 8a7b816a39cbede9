-- Total spend per customer over succeeded payments, ranked: the top spenders are high priority for support.
with spend as (
    select customer_id, sum(amount) as total_spend, count(*) as payments, max(created_at) as last_payment_at
    from {{ ref('stg_payments') }}
    where status = 'succeeded'
    group by customer_id
)
select
    c.customer_id as account_id,
    c.name,
    c.email,
    c.country,
    c.plan,
    coalesce(s.total_spend, 0) as total_spend,
    coalesce(s.payments, 0) as payments,
    s.last_payment_at,
    case when coalesce(s.total_spend, 0) >= {{ var('high_priority_spend', 5000) }} then 'high' else 'normal' end
        as priority
from {{ ref('stg_customers') }} as c
left join spend as s on s.customer_id = c.customer_id
