# The Scrapy side of the bench's crawl part (bench/crawl.ts runs it): a plain
# spider with no item pipeline, yielding per page what gaffer's crawl kind
# emits (url, status, depth, title, links) and following every link. The
# crawl rules (robots.txt, depth, concurrency, no delay) come from -s
# settings on the command line, so they sit next to gaffer's spec in crawl.ts.
#
#   /usr/bin/python3 -m scrapy runspider bench/crawl_spider.py \
#       -a seed=http://127.0.0.1:PORT/p/0.html -a stats=/tmp/stats.json -s ...
#
# `-a allowed=` (empty) follows links to any host, as the crawl-scale part
# needs on its 50-host site (127.0.0.2 to .51); the default keeps the crawl
# part's one host, 127.0.0.1.

import json

import scrapy
from scrapy import signals
from scrapy.linkextractors import LinkExtractor


class CrawlBenchSpider(scrapy.Spider):
    name = 'crawl-bench'

    def __init__(self, seed=None, stats=None, allowed='127.0.0.1', *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not seed:
            raise ValueError('crawl_spider.py needs -a seed=URL')
        self.start_urls = [seed]
        # An empty list makes the offsite filter let every host through.
        self.allowed_domains = [d for d in allowed.split(',') if d]
        self.stats_path = stats
        self.link_extractor = LinkExtractor()
        # The bench compares the set of pages each crawler found; a list of
        # URLs costs next to nothing beside the parse itself.
        self.found = []

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        # Not closed(): CoreStats may fill elapsed_time_seconds after the
        # spider's own spider_closed handler; by engine_stopped it has.
        crawler.signals.connect(spider.write_stats, signal=signals.engine_stopped)
        return spider

    def parse(self, response):
        links = self.link_extractor.extract_links(response)
        self.found.append(response.url)
        yield {
            'url': response.url,
            'status': response.status,
            'depth': response.meta['depth'],
            'title': response.css('title::text').get(),
            'links': [link.url for link in links],
        }
        for link in links:
            yield scrapy.Request(link.url, callback=self.parse)

    def write_stats(self):
        if not self.stats_path:
            return
        with open(self.stats_path, 'w') as f:
            json.dump({'version': scrapy.__version__, 'stats': self.crawler.stats.get_stats(), 'found': self.found}, f, default=str)
