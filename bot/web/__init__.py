"""Web console (issue 8): `bot.web.app.create_app` builds the FastAPI application."""
