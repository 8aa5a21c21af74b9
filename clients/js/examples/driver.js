// The example driver app (/ops/try/driver.html): goes available at the position given by
// ?lat=&lon= (or the map's centre; click the map to move), sends it every 2 s, and offers
// buttons for the trip's steps: accept, arrived, start, complete.
import { connectDriver } from '../src/index.js';
import { getToken, log, makeMap, marker, params, wsBase } from './common.js';

const token = getToken('driver');
const map = makeMap();
const me = marker(map, '#1565c0');
let pos = { lat: Number(params.get('lat') || 40.755), lon: Number(params.get('lon') || -73.984) };
me.setLngLat([pos.lon, pos.lat]).addTo(map);
const $ = (id) => document.getElementById(id);
window.meridianExample = { trip: null, offer: null, events: [] };

function buttons(driver) {
  const t = driver.trip;
  const offer = [...driver.offers.values()].at(-1) || null;
  window.meridianExample.trip = t;
  window.meridianExample.offer = offer;
  $('trip').textContent = t ? `${t.trip_id}: ${t.status}` : offer ? `offer ${offer.offer_id} (${Math.round(offer.pickup_eta_s)} s to the pickup)` : 'waiting for an offer';
  $('accept').disabled = !offer || (t && t.offer_id === offer.offer_id && t.status !== 'offered');
  $('arrived').disabled = !t || t.status !== 'matched';
  $('start').disabled = !t || t.status !== 'arrived';
  $('complete').disabled = !t || t.status !== 'started';
}

if (token) {
  connectDriver({ url: wsBase, token }).then(async (driver) => {
    window.meridianExample.driver = driver;
    $('state').textContent = 'connected';
    driver.on('close', () => ($('state').textContent = 'reconnecting…'));
    driver.on('open', async () => {
      $('state').textContent = 'connected';
      await driver.location(pos);
      driver.status('available').catch((e) => log(e.message));
    });
    for (const ev of ['offer', 'trip', 'resync']) {
      driver.on(ev, (m) => {
        window.meridianExample.events.push(ev);
        log(`${ev} ${m && (m.status || m.offer_id || (m.trip && m.trip.status)) || ''}`);
        buttons(driver);
      });
    }
    driver.on('error', (e) => log(`error ${e.message}`));
    await driver.location(pos);
    await driver.status('available');
    log('available');
    setInterval(() => driver.location(pos), 2000);
    map.on('click', (e) => {
      pos = { lat: e.lngLat.lat, lon: e.lngLat.lng };
      me.setLngLat([pos.lon, pos.lat]);
      driver.location(pos);
    });
    const step = (name, fn) => {
      $(name).onclick = async () => {
        try {
          await fn();
          log(`${name} acked`);
        } catch (err) {
          log(`${name} refused: ${err.message}`);
        }
        buttons(driver);
      };
    };
    step('accept', () => driver.accept([...driver.offers.values()].at(-1).offer_id));
    step('arrived', () => driver.arrived(driver.trip.trip_id));
    step('start', () => driver.start(driver.trip.trip_id));
    step('complete', () => driver.complete(driver.trip.trip_id));
    buttons(driver);
  }).catch((e) => {
    $('state').textContent = `not connected: ${e.message}`;
  });
}
