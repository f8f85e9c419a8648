"""Audience packs (人群包 by scene and tier): who a lead is, for script and incentive choice."""
