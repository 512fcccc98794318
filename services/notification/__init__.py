"""Notification: contact points, token revocations, and (its own issue) templated delivery."""
