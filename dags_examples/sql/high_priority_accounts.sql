-- High-priority accounts: ranked by what they paid us; the support CRM sorts incoming tickets by it.
SELECT
    c.id AS account_id,
    c.name,
    c.email,
    c.plan,
    SUM(p.amount) AS total_spend,
    RANK() OVER (ORDER BY SUM(p.amount) DESC) AS spend_rank,
    CASE WHEN SUM(p.amount) >= 7000 THEN 'critical' ELSE 'high' END AS priority
FROM customers AS c
JOIN payments AS p ON p.customer_id = c.id AND p.status = 'succeeded'
GROUP BY c.id, c.name, c.email, c.plan
HAVING SUM(p.amount) >= 6000
