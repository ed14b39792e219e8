"""Read a served DCAT catalogue as a CKAN portal's DCAT harvester does; run by CKAN's venv.

Usage: ``.venv-ckan/bin/python ckan_read_dcat.py URL``. Fetches URL, parses it with
ckanext-dcat's ``RDFParser`` and its DCAT-AP 3 profile, follows ``parser.next_page()`` (the
hydra paging ckanext-dcat's harvester follows) to the last page, and prints, as JSON, the
number of pages and the CKAN dataset dicts a portal would create.
"""

import json
import sys
import urllib.request

from ckanext.dcat.processors import RDFParser

url, pages, datasets = sys.argv[1], 0, []
while url:
    request = urllib.request.Request(url, headers={"Accept": "text/turtle"})
    with urllib.request.urlopen(request, timeout=60) as response:
        content_type = response.headers.get_content_type()
        text = response.read().decode()
    parser = RDFParser(profiles=["euro_dcat_ap_3"])
    parser.parse(
        text,
        _format={
            "text/turtle": "turtle",
            "application/rdf+xml": "xml",
            "application/ld+json": "json-ld",
        }[content_type],
    )
    datasets += list(parser.datasets())
    pages += 1
    url = parser.next_page()
json.dump({"pages": pages, "datasets": datasets}, sys.stdout, default=str)
