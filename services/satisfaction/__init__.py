"""satisfaction: the platform skeleton (ping, database, metrics, logs); its own issue fills it."""
