"""WeCom (企业微信) add-friend: offers per audience pack, the API client, the callback,
invitations after grading, and the add-friend funnel."""
