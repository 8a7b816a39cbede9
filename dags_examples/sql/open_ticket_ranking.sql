-- How support works the open tickets of the high-priority accounts: critical -> Zendesk priority urgent and the
-- tag vip, high -> high. Only the rank: tickets are re-ranked when an account's tier changes, not whenever its
-- spend does.
SELECT
    a.account_id,
    CASE a.priority WHEN 'critical' THEN 'urgent' ELSE 'high' END AS ticket_priority,
    CASE WHEN a.priority = 'critical' THEN 'vip' END AS ticket_tags
FROM (
{% include "sql/high_priority_accounts.sql" %}
) AS a
