"""The pages' reads, one module per page as the routes are (each route module reads its own):

quarantine   the grouped quarantine, one group's open rows, organization matches, the CSV export
mapping      the mapping page: staged organizations with their company, rule and status
companies    the company picker: the staged companies and their ranked search
runs         the runs pages: run counts, amounts held for the charts
reports      a run's report files, listed and served only from inside the reports root
staging      shared: the newest run's staged frames, company names and cards
"""
